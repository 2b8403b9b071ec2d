"""Executable theory (``nashax.theory``): claims that ``nashax verify`` runs."""

from nashax.theory.registry import Claim, ClaimResult, claim, claims, run_claims, write_report

__all__ = ["Claim", "ClaimResult", "claim", "claims", "run_claims", "write_report"]
