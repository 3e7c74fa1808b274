"""Verification: secret keys drawn at split, blind verifiers, coordinator-side decisions, adaptive trust.

- ``keys``: draw the secret keys of a task when the job is split.
- ``trust``: how often a renderer is checked, from its record.
- ``commit``: when a task's frames are all in, decide which keys are used and queue their checks.
- ``dispatch``: lease checks to eligible verifiers (another owner, not suspended).
- ``decide``: compare a verifier's region with the renderer's frame; pass, fail, arbitration, audits.
- ``penalties``: what happens to a caught renderer or verifier.
- ``ringers``: second opinions in place of a verifier's real check, whose answer the coordinator will know.
"""
