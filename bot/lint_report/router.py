"""Webhook routes of this capability; composed with the others in ``bot.worker.routing``."""

from gidgethub import routing

router = routing.Router()
