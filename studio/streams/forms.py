from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from studio.streams.reconnect import RECONNECT_WINDOW_MAX


class StreamForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120)])


class SecondsField(IntegerField):
    """Whole seconds; a number too long to be one is refused before it is
    compared (WTForms' NumberRange turns a huge int into a float and fails)."""

    def process_formdata(self, valuelist):
        if valuelist and len(valuelist[0].strip()) > 6:
            self.data = None
            raise ValueError(f"Between 0 and {RECONNECT_WINDOW_MAX} seconds.")
        super().process_formdata(valuelist)


class ReconnectForm(FlaskForm):
    reconnect_window = SecondsField(
        "Reconnect window (seconds)",
        validators=[
            InputRequired("A number of seconds is required."),
            NumberRange(0, RECONNECT_WINDOW_MAX, f"Between 0 and {RECONNECT_WINDOW_MAX} seconds."),
        ],
        render_kw={"min": 0, "max": RECONNECT_WINDOW_MAX, "step": 1, "inputmode": "numeric"},
    )


class ActionForm(FlaskForm):
    """A button that changes state: CSRF token only."""
