"""The HTTP API: recommendations, predictions and lookups from the champion's serving set.

Every answer comes from the in-memory snapshot of the newest serving set (see snapshot.py).
Errors are JSON objects {"error": "<one sentence>"}: 404 for unknown ids, 422 for input that
does not validate (with the parameter named), 405 with an Allow header for a method a path does
not take, never a 500 for anything a client sends.

The OpenAPI schema is the contract, and tests/api/test_api_contract.py holds the server to it
with requests generated from the schema alone: so every status code a route gives is declared on
it, and every limit the code enforces (n, the genre vocabulary) is stated in it.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations, and the
# limit of n in them is a local of create_app, which a string annotation could not name.
import re
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from recsys.genres import GENRES
from recsys_api.snapshot import Snapshot, SnapshotSource, user_profile

DOCS_ASSETS = "/docs-assets"

DEFAULT_N = 10
_GENRE_NAMES = {name.lower(): name for name in GENRES}
# The genre vocabulary as an enum, so the schema lists it (a functional enum: "Sci-Fi" is no identifier).
Genre = StrEnum("Genre", {name: name for name in GENRES})


class Error(BaseModel):
    error: str = Field(description="One sentence saying what is wrong; for a 422, it names the parameter or body field.")


NOT_FOUND = {404: {"model": Error, "description": "The id is not known."}}
UNREADABLE = {400: {"model": Error, "description": "The body cannot be read as JSON text (e.g. it is not UTF-8)."}}
INVALID = {422: {"model": Error, "description": "The input does not validate; the sentence names the parameter or body field."}}


# Integers as the schema's "integer" means them, where pydantic's lax mode alone reads more: in a
# body 5 or 5.0, not true or "5" (strict mode would refuse 5.0 too); in a path or query the text
# of one, "5" or "-5", not " 5", "1_000" or "1.0".
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


def _no_boolean_or_text(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _integer_text(value: Any) -> Any:
    if isinstance(value, str) and not INTEGER_TEXT.fullmatch(value):
        raise PydanticCustomError("int_parsing", "Input should be a valid integer, unable to parse string as an integer")
    return value


JSON_INTEGER = BeforeValidator(_no_boolean_or_text)
TEXT_INTEGER = BeforeValidator(_integer_text)


class Movie(BaseModel):
    movie_id: int
    title: str | None
    genres: list[str]
    year: int | None
    ratings: int = Field(description="Ratings in the feature store as of the serving set.")
    mean_rating: float | None
    popularity_rank: int | None = Field(description="Rank in the cold-start popularity list, if listed.")


class RecommendedMovie(BaseModel):
    rank: int
    movie_id: int
    title: str | None
    genres: list[str]
    year: int | None
    score: float = Field(description="The predicted rating (sources model and cold_start) or the recent ratings (source popularity).")


class Recommendations(BaseModel):
    user_id: int
    source: Literal["model", "cold_start", "popularity"] = Field(
        description="model: the user's precomputed two-stage top-N (retrieval candidates ordered by the rating model); "
        "cold_start: the two-stage list of a user with no ratings, for users the serving set does not know; "
        "popularity: the most rated recent movies, where the serving set holds no cold-start list."
    )
    reason: str
    score_kind: Literal["predicted_rating", "recent_ratings"] = Field(
        description="predicted_rating: the model's; recent_ratings: the movie's ratings in the popularity window, "
        "which the fallback ranks by (mean rating breaking ties)."
    )
    model_version: str
    as_of: str = Field(description="The partition whose end state the recommendations were computed on.")
    items: list[RecommendedMovie]


class GenrePreference(BaseModel):
    genre: str
    ratings: int
    mean_rating: float


class User(BaseModel):
    user_id: int
    ratings: int
    mean_rating: float
    genres: list[GenrePreference]
    has_recommendations: bool
    as_of: str


class NewMovie(BaseModel):
    """A movie with no ratings yet, described by its features."""

    genres: list[Genre] = Field(description="MovieLens genre names (any letter case is accepted). Empty: no genres listed.")
    year: Annotated[int | None, JSON_INTEGER] = Field(default=None, ge=1870, le=2100, description="Release year, if known.")

    @field_validator("genres", mode="before")
    @classmethod
    def canonical_genres(cls, genres: Any) -> Any:
        """Genre names match ignoring case ("sci-fi" is "Sci-Fi"), as before the schema listed them;
        anything but a list of strings is left to the type check, which rejects it with a 422."""
        if not isinstance(genres, list):
            return genres
        unknown = [g for g in genres if isinstance(g, str) and g.lower() not in _GENRE_NAMES]
        if unknown:
            raise ValueError(f"unknown genre {unknown[0]!r}; use MovieLens genres: {', '.join(GENRES)}")
        return [_GENRE_NAMES[g.lower()] if isinstance(g, str) else g for g in genres]


class PredictRequest(BaseModel):
    # "Exactly one of movie_id and movie" stated in the schema too, so a client that reads only the
    # schema knows it; one_movie below is what enforces it.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["movie_id"], "properties": {"movie_id": {"type": "integer"}}},
                {"required": ["movie"], "properties": {"movie": {"type": "object"}}},
            ]
        }
    )

    user_id: Annotated[int, JSON_INTEGER]
    movie_id: Annotated[int | None, JSON_INTEGER] = Field(default=None, description="A movie of the catalog; or give `movie` instead.")
    movie: NewMovie | None = None

    @model_validator(mode="after")
    def one_movie(self) -> Self:
        if (self.movie_id is None) == (self.movie is None):
            raise ValueError("give exactly one of movie_id or movie")
        return self


class Prediction(BaseModel):
    user_id: int
    movie_id: int | None
    predicted_rating: float
    user_known: bool = Field(description="False: a user without ratings, predicted from the cold-start user features.")
    model_version: str
    as_of: str


class Stats(BaseModel):
    model_version: str
    as_of: str
    users: int = Field(description="Users with ratings as of the serving set (each has a user vector).")
    movies: int = Field(description="Movies in the catalog.")
    ratings: int = Field(description="Ratings as of the serving set.")
    global_mean_rating: float
    users_with_recommendations: int
    recommendations_per_user: int
    popular_movies: int = Field(description="Movies in the cold-start popularity list.")
    embedding_backend: str
    embedding_dim: int
    latest_day: dict[str, Any] = Field(
        description="The latest day's test-then-train figures: partition, mse, ndcg_at_10 and recall_at_10 per model; "
        "empty before the first day."
    )


class Health(BaseModel):
    status: Literal["ok"]
    model_version: str
    as_of: str
    embedding_backend: str
    store: str
    loaded_at: str


def _location(loc: tuple) -> str:
    where, *rest = loc
    name = ".".join(str(part) for part in rest)
    if where in ("query", "path"):
        return f"{where} parameter {name}"
    return f"body field {name}" if name else "request body"


def _problem(error: dict) -> str:
    """One validation error as a clause: where, then what."""
    if error["type"] == "json_invalid":  # its loc is ("body", character offset), not a field
        return f"the request body is not valid JSON ({error['ctx']['error']} at character {error['loc'][1]})"
    return f"{_location(tuple(error['loc']))}: {error['msg']}"


def create_app(source: SnapshotSource) -> FastAPI:
    # The schema states the limit of n that the serving set in use at start holds; a later set with
    # another count is still enforced below, with a 422 the schema declares.
    per_user_at_start = source.current.serving.recommendations_per_user

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        source.start()
        yield
        source.stop()

    app = FastAPI(
        title="recsys",
        summary="Movie recommendations from the champion two-tower model, with a popularity fallback.",
        lifespan=lifespan,
        docs_url=None,  # served below from the installed Swagger UI, not FastAPI's default CDN
    )
    # The interactive docs work without internet: Swagger UI's files come from the swagger-ui-bundle wheel.
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="recsys API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        # The headers carry Allow on a 405 (RFC 9110 requires it).
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(_: Request, error: RequestValidationError) -> JSONResponse:
        messages = [_problem(e) for e in error.errors()]
        return JSONResponse({"error": "; ".join(messages) + "."}, status_code=422)

    def snapshot() -> Snapshot:
        return source.current

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        s = snapshot()
        return Health(
            status="ok", model_version=s.version, as_of=s.as_of, embedding_backend=s.serving.embedding_backend,
            store=s.store, loaded_at=s.loaded_at.isoformat(),
        )  # fmt: skip

    @app.get("/stats", response_model=Stats)
    async def stats() -> Stats:
        s = snapshot()
        return Stats(
            model_version=s.version,
            as_of=s.as_of,
            users=len(s.user_ids),
            movies=len(s.movies),
            ratings=s.rating_count,
            global_mean_rating=s.serving.global_mean,
            users_with_recommendations=len(s.rec_users),
            recommendations_per_user=s.serving.recommendations_per_user,
            popular_movies=s.popular.height,
            embedding_backend=s.serving.embedding_backend,
            embedding_dim=s.serving.embedding_dim,
            latest_day=s.monitoring,
        )

    @app.get("/users/{user_id}", response_model=User, responses={**NOT_FOUND, **INVALID})
    async def user(user_id: Annotated[int, Path(description="A MovieLens user id."), TEXT_INTEGER]) -> User:
        s = snapshot()
        row = s.user_row(user_id)
        if row is None:
            raise HTTPException(404, f"User {user_id} has no ratings as of {s.as_of}; /recommendations answers them with the cold-start list.")
        return User(user_id=user_id, **user_profile(s, row), has_recommendations=s.recommendations(user_id) is not None, as_of=s.as_of)

    @app.get("/movies/{movie_id}", response_model=Movie, responses={**NOT_FOUND, **INVALID})
    async def movie(movie_id: Annotated[int, Path(description="A MovieLens movie id."), TEXT_INTEGER]) -> Movie:
        s = snapshot()
        if movie_id not in s.movies:
            raise HTTPException(404, f"Movie {movie_id} is not in the catalog.")
        return Movie(movie_id=movie_id, **s.movies[movie_id])

    @app.get("/recommendations/{user_id}", response_model=Recommendations, responses=INVALID)
    async def recommendations(
        user_id: Annotated[int, Path(description="A MovieLens user id; unknown users get the cold-start list."), TEXT_INTEGER],
        n: Annotated[
            int,
            Query(ge=1, le=per_user_at_start, description=f"How many movies: at most {per_user_at_start}, the recommendations precomputed per user."),
            TEXT_INTEGER,
        ] = min(DEFAULT_N, per_user_at_start),  # a default above the limit would fail the requests that leave n out
    ) -> Recommendations:
        s = snapshot()
        per_user = s.serving.recommendations_per_user
        if n > per_user:  # a set loaded since start may hold fewer per user than the schema states
            raise HTTPException(422, f"query parameter n: must be at most {per_user}, the recommendations precomputed per user.")
        found = s.recommendations(user_id)
        if found is not None:
            movies, scores = found[0][:n], found[1][:n]
            source, kind = "model", "predicted_rating"
            reason = (
                f"two stages: the retrieval model {s.serving.retrieval_version} picked the movies this user has not rated "
                f"and is likely to choose, the rating model {s.serving.model_version} ordered them with its predicted rating"
            )
        elif s.cold_start.height:
            movies, scores = s.cold_start["movie_id"].to_numpy()[:n], s.cold_start["score"].to_numpy()[:n]
            source, kind = "cold_start", "predicted_rating"
            reason = (
                "the model has no ratings of this user, so the list of a user without ratings answers: the retrieval "
                f"model {s.serving.retrieval_version} picked the movies new users choose, the rating model ordered them"
            )
        else:
            movies, scores = s.popular["movie_id"].to_numpy()[:n], s.popular["ratings"].to_numpy()[:n]
            source, kind = "popularity", "recent_ratings"
            reason = "the model has no ratings of this user, so the most rated movies of recent days answer"
        items = [
            RecommendedMovie(
                rank=rank, movie_id=int(m), score=round(float(score), 4),
                **{k: s.movies.get(int(m), {}).get(k) for k in ("title", "year")}, genres=s.movies.get(int(m), {}).get("genres", []),
            )  # fmt: skip
            for rank, (m, score) in enumerate(zip(movies, scores), start=1)
        ]
        return Recommendations(
            user_id=user_id, source=source, reason=reason, score_kind=kind, model_version=s.version, as_of=s.as_of, items=items
        )

    @app.post("/predict", response_model=Prediction, responses={**UNREADABLE, **NOT_FOUND, **INVALID})
    def predict(request: PredictRequest) -> Prediction:
        s = snapshot()
        row = s.user_row(request.user_id)
        user_vector = s.user_vectors[row] if row is not None else s.cold_user_vector
        if request.movie_id is not None:
            movie_row = s.movie_row(request.movie_id)
            if movie_row is None:
                raise HTTPException(404, f"Movie {request.movie_id} is not in the catalog; describe it by genres and year in `movie` instead.")
            movie_vector = s.movie_vectors[movie_row]
        else:
            movie_vector = s.new_movie_vector(request.movie.genres, request.movie.year)
        return Prediction(
            user_id=request.user_id, movie_id=request.movie_id, predicted_rating=round(s.predict(user_vector, movie_vector), 4),
            user_known=row is not None, model_version=s.version, as_of=s.as_of,
        )  # fmt: skip

    return app
