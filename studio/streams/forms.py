from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class StreamForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120)])


class ActionForm(FlaskForm):
    """A button that changes state: CSRF token only."""
