"""The form of the Webhooks page (URL and event checkboxes)."""

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from studio.webhooks.addresses import URL_MAX
from studio.webhooks.service import EVENT_TYPES

EVENT_LABELS = {
    "stream.live": "stream.live: a broadcast started",
    "stream.reconnecting": "stream.reconnecting: the publisher dropped, waiting for it",
    "stream.ended": "stream.ended: a broadcast ended",
    "replay.ready": "replay.ready: a replay can be watched",
    "publish.refused": "publish.refused: a publish was refused (old key, ...)",
    "target.failed": "target.failed: a multistream target failed",
}


class EventChoices(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class WebhookForm(FlaskForm):
    url = StringField(
        "URL", validators=[DataRequired(), Length(max=URL_MAX)], render_kw={"type": "url"}
    )
    events = EventChoices(
        "Events",
        choices=[SelectChoice(name, EVENT_LABELS[name]) for name in EVENT_TYPES],
        default=[],
    )
