"""A refused token in words an artist can act on: the one sentence for the coordinator's 401 and 403 answers.

No ``bpy`` here. The ``framehive`` command, the "Test connection" button (connection_check.py), the job watcher
(job_watch.py) and a submission (submission.py) each say what the token was refused for and, where it helps,
how to fix it there (``--token``, the add-on's preferences); the sentence itself is written only here.
"""

from __future__ import annotations

from .client import ApiError

# A 401: the coordinator does not know the token (mistyped, expired, revoked) or got none.
UNKNOWN_TOKEN = "the coordinator refused the token (wrong, expired or revoked)"
# A 403 on the artist's API: a valid token of another kind (a worker's) for an endpoint of user tokens.
NOT_A_USER_TOKEN = "this token may not {action} (a user token is needed)"


def token_refusal(exc: ApiError, action: str, hint: str = "") -> str | None:
    """The sentence for a 401 or 403 answer, None for any other error.

    ``action`` is what the token was used for, as in "this token may not <action>" ("submit jobs"); ``hint`` says
    where the caller's token is fixed ("check --token or $FRAMEHIVE_TOKEN") and follows after a semicolon. The
    coordinator's own message is kept: it says which of the reasons it was.
    """
    if exc.status == 401:
        sentence = UNKNOWN_TOKEN
    elif exc.status == 403:
        sentence = NOT_A_USER_TOKEN.format(action=action)
    else:
        return None
    return f"{sentence}: {exc.message}" + (f"; {hint}" if hint else "")
