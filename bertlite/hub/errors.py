"""Turning huggingface_hub's HTTP errors into BertliteErrors that say what to do.

The Hub hides private repositories: without a token it answers 401 "repository not found", with a token of
another account 404. Both are reported as "not found, or private" with the fix that applies (log in / use a
token that can read it). Messages never contain the token itself.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import BertliteError

LOGIN_HINT = "log in with `hf auth login` or set the HF_TOKEN environment variable (from Python: token=...)"
TOKEN_PAGE = "https://huggingface.co/settings/tokens"


@contextmanager
def hub_errors(repo_id: str, *, revision: str | None = None, has_token: bool = False, action: str = "access"):
    """Translate errors raised inside the block. `has_token`: whether a token was sent."""
    import httpx2
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # Order matters: LocalEntryNotFoundError is an EntryNotFoundError, GatedRepoError a RepositoryNotFoundError.
    try:
        yield
    except BertliteError:
        raise
    except RuntimeError as err:
        # huggingface_hub wraps what goes wrong in its upload threads ("Error while uploading 'x' to the Hub"):
        # translate the network or HTTP error inside, as if it had been raised here.
        cause = _hub_cause(err, (BertliteError, httpx2.TransportError, HfHubHTTPError))
        if cause is None:
            raise
        if isinstance(cause, BertliteError):
            raise cause from err
        with hub_errors(repo_id, revision=revision, has_token=has_token, action=action):
            raise cause from err
    except LocalTokenNotFoundError as err:
        raise BertliteError(f"No Hugging Face token found to {action} {repo_id!r}: {LOGIN_HINT}.") from err
    except RevisionNotFoundError as err:
        raise BertliteError(
            f"The revision {revision!r} does not exist in {repo_id!r}: check the branch, tag or commit name "
            f"(list them with `huggingface_hub.list_repo_refs({repo_id!r})`)."
        ) from err
    except GatedRepoError as err:
        raise BertliteError(f"{repo_id!r} is gated: request access on its Hub page, then retry with a token of the "
                            "account that was granted access.") from err
    except RepositoryNotFoundError as err:
        if has_token:
            raise BertliteError(
                f"Repository {repo_id!r} was not found, or your token cannot {action} it (a private repository of "
                "another account or organization?). Check the id, and that the token's account has access."
            ) from err
        raise BertliteError(
            f"Repository {repo_id!r} was not found, or it is private and no token was given: check the id, or "
            f"{LOGIN_HINT}."
        ) from err
    except (OfflineModeIsEnabled, LocalEntryNotFoundError, httpx2.TransportError) as err:
        raise BertliteError(
            f"Could not reach the Hub to {action} {repo_id!r} ({type(err).__name__}): check your connection, "
            "HF_ENDPOINT and HF_HUB_OFFLINE. (A model downloaded before loads from the cache without a connection.)"
        ) from err
    except EntryNotFoundError as err:
        raise BertliteError(f"A file is missing in {repo_id!r}{f' at {revision!r}' if revision else ''}: {_first_line(err)}") from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status == 401 and not has_token:
            raise BertliteError(f"The Hub needs a token to {action} {repo_id!r}: {LOGIN_HINT}.") from err
        if status == 401:
            raise BertliteError(
                f"The Hub rejected your token (invalid or expired) while trying to {action} {repo_id!r}: create a new "
                f"one at {TOKEN_PAGE}, then run `hf auth login --force` or update HF_TOKEN."
            ) from err
        if status == 403:
            raise BertliteError(
                f"Your token is not allowed to {action} {repo_id!r}: use a token with write access to that namespace "
                f"({TOKEN_PAGE})."
            ) from err
        raise BertliteError(f"The Hub answered an error while trying to {action} {repo_id!r}: {_first_line(err)}") from err


def _hub_cause(err: BaseException, kinds) -> BaseException | None:
    """The first exception of `kinds` in err's chain of causes, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kinds):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
