from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from studio.streams.targets import KEY_MAX, NAME_MAX, PRESETS, URL_MAX


class StreamForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120)])


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
