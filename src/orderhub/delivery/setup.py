"""Settings -> the configured integration senders (called by bootstrap only)."""

from __future__ import annotations

from orderhub.delivery.integrations.base import DeliveryMessage, EmailMessage
from orderhub.delivery.registry import Integrations
from orderhub.settings import Settings


def make_integrations(settings: Settings) -> Integrations:
    integrations = Integrations()
    if settings.email_backend != "none":
        from orderhub.delivery.integrations.email.render import EmailRenderer

        renderer = EmailRenderer(settings.email_templates_dir, settings.shop_name)
        sender = settings.email_from

        def render(message: DeliveryMessage) -> EmailMessage | None:
            return renderer.render(message, sender)

        integrations.email_render = render
        if settings.email_backend == "file":
            from orderhub.delivery.integrations.email.file import FileEmailSender

            integrations.email = FileEmailSender(settings.data_dir / "mail")
        elif settings.email_backend == "smtp":
            from orderhub.delivery.integrations.email.smtp import SmtpEmailSender

            integrations.email = SmtpEmailSender(settings.smtp_url)
        else:
            from orderhub.delivery.integrations.email.sendgrid import SendGridEmailSender

            integrations.email = SendGridEmailSender(
                settings.sendgrid_api_key,
                settings.sendgrid_api_base or "https://api.sendgrid.com",
            )
    if settings.sheets_backend == "csv":
        from orderhub.delivery.integrations.sheets.csv import CsvSheetWriter

        integrations.sheets = CsvSheetWriter(settings.data_dir / "sheets" / "orders.csv")
    elif settings.sheets_backend == "google":
        from orderhub.delivery.integrations.sheets.google import GoogleSheetWriter

        integrations.sheets = GoogleSheetWriter(
            settings.google_sheets_spreadsheet_id,
            settings.google_application_credentials,
            settings.google_sheets_api_base,
        )
    if settings.notify_backend == "file":
        from orderhub.delivery.integrations.notify.file import FileNotifier

        integrations.notifications = FileNotifier(settings.data_dir / "notifications.jsonl")
    elif settings.notify_backend == "sns":
        from orderhub.delivery.integrations.notify.sns import SnsNotifier

        integrations.notifications = SnsNotifier(settings.sns_topic_arn, None, None)
    elif settings.notify_backend == "webhook":
        from orderhub.delivery.integrations.notify.webhook import WebhookNotifier

        integrations.notifications = WebhookNotifier(
            settings.notify_webhook_url, settings.notify_webhook_secret
        )
    return integrations
