"""GET /healthz: which model serves and whether the database answers, for health checks
(docker-compose, a load balancer); and POST /webapp/photo, the camera page's (bot/webapp.py).
Served by tornado, which PTB's webhook server already runs on, on a port of its own so that it
works in polling mode too."""

from __future__ import annotations

import logging

import tornado.httpserver
import tornado.web
from sqlalchemy import text
from telegram import Bot

from bot.services import Services
from bot.webapp import MB, WebAppPhotoHandler

log = logging.getLogger(__name__)


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, svc: Services) -> None:
        self.svc = svc

    async def get(self) -> None:
        try:
            await self.svc.db(lambda session: session.execute(text("SELECT 1")))
            database = "ok"
        except Exception as err:  # any failure to answer is "unhealthy", with the reason logged
            log.warning("health check: database unreachable: %s", err)
            database = "unreachable"
        self.set_status(200 if database == "ok" else 503)
        self.write({"model_version": self.svc.identifier.classifier.version, "database": database})


def start_health_server(svc: Services, bot: Bot) -> tornado.httpserver.HTTPServer:
    """Listen on HEALTH_LISTEN:HEALTH_PORT in the running event loop: /healthz, and the camera
    page's POST /webapp/photo (bot/webapp.py), which sends with `bot`."""
    app = tornado.web.Application(
        [
            ("/healthz", HealthHandler, {"svc": svc}),
            ("/webapp/photo", WebAppPhotoHandler, {"svc": svc, "bot": bot}),
        ]
    )
    # Room for a photo at the size limit and the form around it; WebAppPhotoHandler answers a
    # photo over the limit itself, with a message the page shows.
    max_body = 2 * svc.settings.max_download_mb * MB + MB
    server = tornado.httpserver.HTTPServer(app, max_body_size=max_body)
    server.listen(svc.settings.health_port, svc.settings.health_listen)
    log.info(
        "health check on http://%s:%d/healthz", svc.settings.health_listen, svc.settings.health_port
    )
    return server
