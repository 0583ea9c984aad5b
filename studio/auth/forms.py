from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class RegisterForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=10, max=256)])


class TokenForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=80)])


class AccountForm(FlaskForm):
    display_name = StringField(
        "Display name",
        validators=[
            DataRequired("Choose a display name."),
            Length(max=40, message="A display name is at most 40 characters."),
        ],
        description="Shown with your chat messages on every stream.",
    )
