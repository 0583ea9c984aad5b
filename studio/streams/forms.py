from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length

from studio.models import VISIBILITIES

VISIBILITY_LABELS = {
    "public": "Public: on the home page, anyone can watch",
    "unlisted": "Unlisted: anyone with the link can watch; never listed",
    "private": "Private: only you and people you give a share link",
}


CHOOSE = "Choose public, unlisted or private."


class StreamForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120)])


class VisibilityForm(FlaskForm):
    visibility = RadioField(
        "Who can watch",
        choices=[SelectChoice(value, VISIBILITY_LABELS[value]) for value in VISIBILITIES],
        validators=[InputRequired(message=CHOOSE), AnyOf(VISIBILITIES, message=CHOOSE)],
        validate_choice=False,  # AnyOf says it in the page's words
    )


class ActionForm(FlaskForm):
    """A button that changes state: CSRF token only."""
