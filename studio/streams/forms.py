from flask_wtf import FlaskForm
from wtforms import EmailField, StringField
from wtforms.validators import DataRequired, Length


class StreamForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120)])


class ActionForm(FlaskForm):
    """A button that changes state: CSRF token only."""


class ModeratorForm(FlaskForm):
    """Appoint a chat moderator by the email of their account."""

    email = EmailField("Moderator's email", validators=[DataRequired(), Length(max=254)])
