"""FastAPI app: loads the models once, serves the page, the WebSocket stream and the HTTP API.

Start with ``python app.py`` (HOST and PORT from the settings) or ``uvicorn app:app``; settings come
from the environment and ``.env`` (see ``.env.example``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from realtime.analyze import router as analyze_router
from realtime.config import PROJECT_ROOT, Settings
from realtime.engine import EmotionEngine
from realtime.session import serve

log = logging.getLogger("realtime.app")


def load_settings() -> Settings:
    """Settings from the environment, or a start-up error that names each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"invalid settings (environment or .env): {problems}") from None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("realtime").setLevel(settings.log_level.upper())
        engine = EmotionEngine.from_settings(settings)
        app.state.engine = engine
        log.info("models: voice=%s face=%s", engine.models.voice, engine.models.face)
        try:
            if settings.quickcheck:
                from eval.quickcheck import print_quickcheck  # imported only when the check is on

                await engine.run(print_quickcheck, engine, settings)
            yield
        finally:
            engine.close()

    app = FastAPI(
        title="Real-time emotion recognition",
        description="Voice and face emotion, fused, streamed over a WebSocket at /ws; file analysis over HTTP.",
        lifespan=lifespan,
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Models loaded, and which ones; 503 when neither a voice nor a face model is loaded."""
        models = app.state.engine.models
        ok = models.voice is not None or models.face is not None
        body = {
            "ready": ok,
            "models": {"voice": models.voice, "face": models.face, "face_detector": models.face_detector},
            "notes": list(models.notes),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.websocket("/ws")
    async def stream(websocket: WebSocket) -> None:
        await serve(websocket, app.state.engine)

    app.include_router(analyze_router)
    app.mount("/", StaticFiles(directory=PROJECT_ROOT / "static", html=True), name="static")
    return app


app = create_app()


def main() -> None:
    """Serve on the HOST and PORT of the settings."""
    import uvicorn

    settings = load_settings()
    uvicorn.run("app:app", host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
