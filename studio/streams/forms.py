from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    ValidationError,
)

from studio import errors
from studio.models import VISIBILITIES
from studio.streams.reconnect import RECONNECT_WINDOW_MAX
from studio.streams.service import clean_title
from studio.streams.targets import KEY_MAX, NAME_MAX, PRESETS, URL_MAX

VISIBILITY_LABELS = {
    "public": "Public: on the home page, anyone can watch",
    "unlisted": "Unlisted: anyone with the link can watch; never listed",
    "private": "Private: only you and people you give a share link",
}


CHOOSE = "Choose public, unlisted or private."


def _title_rules(form: FlaskForm, field: StringField) -> None:
    """`studio.streams.service.clean_title`'s refusal, said on the form."""
    try:
        clean_title(field.data)
    except errors.ValidationError as exc:
        raise ValidationError(exc.fields["title"]) from None


class StreamForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120), _title_rules])


class VisibilityForm(FlaskForm):
    visibility = RadioField(
        "Who can watch",
        choices=[SelectChoice(value, VISIBILITY_LABELS[value]) for value in VISIBILITIES],
        validators=[InputRequired(message=CHOOSE), AnyOf(VISIBILITIES, message=CHOOSE)],
        validate_choice=False,  # AnyOf says it in the page's words
    )


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


class ModeratorForm(FlaskForm):
    """Appoint a chat moderator by the email of their account."""

    email = EmailField("Moderator's email", validators=[DataRequired(), Length(max=254)])


class TargetForm(FlaskForm):
    """Add a multistream target: a preset fills in the server URL (the rules
    are `studio.streams.targets`'; these only bound the fields)."""

    preset = SelectField(
        "Service",
        choices=[SelectChoice("custom", "Custom RTMP/RTMPS server")]
        + [SelectChoice(slug, preset.name) for slug, preset in PRESETS.items()],
        default="custom",
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=NAME_MAX)])
    url = StringField("Server URL", validators=[DataRequired(), Length(max=URL_MAX)])
    key = PasswordField("Stream key", validators=[DataRequired(), Length(max=KEY_MAX)])
    enabled = BooleanField("Enabled", default=True)
