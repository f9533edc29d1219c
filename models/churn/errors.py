"""Input errors of the churn model: ValueError subclasses whose messages name the problem."""

from __future__ import annotations


class ChurnInputError(ValueError):
    """A frame the churn model cannot train on or score."""


class SingleClassError(ChurnInputError):
    """Labels hold one class only: nothing to discriminate."""


class TooFewCustomersError(ChurnInputError):
    """Fewer customers than the configured minimum."""


class MissingFeaturesError(ChurnInputError):
    """Feature columns the model was trained on are absent from the frame."""

    def __init__(self, missing: list[str], where: str = "scoring frame") -> None:
        self.missing = list(missing)
        super().__init__(
            f"{where} lacks {len(self.missing)} feature column(s) the model needs: {', '.join(self.missing)}"
        )
