"""The evidence head, its calibration and the operating-point rule.

The head reads no pixel features, only how much of the ImageNet softmax falls on in-scope-looking,
skirt-shaped, near and far-product classes (imagenet_groups). Licensed in-scope photos on white are all
Fashion-MNIST renders and every licensed out-of-scope photo has a real background, so a head on pixel
features learns "white background = in scope"; the ImageNet answer cannot take that shortcut. The
renders are left out of the fit for the same reason: they look like no ImageNet class, and as positives
they would teach "no evidence of anything = in scope", which lets every studio product shot through.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scope_build.imagenet_groups import evidence_matrix

#: a group's softmax mass is floored here before its log, so an absent group is a finite input
EVIDENCE_FLOOR = 1e-6
#: scikit-learn's C (inverse regularisation) tried for the head; the largest is all but unregularised
C_CHOICES = (0.001, 0.003, 0.01, 0.03, 0.1, 1.0)
#: share of licensed real in-scope validation photos kept in scope at the operating point
KEEP = 0.975


@dataclass
class Head:
    """in_scope = sigmoid(a * (w . x + b0) + b), x = evidence(logits): the fitted weights and the Platt
    calibration (a, b), and the validation AUROCs of each C tried."""

    w: np.ndarray
    b0: float
    a: float
    b: float
    c: float
    tried: list[dict] = field(default_factory=list)

    def logit(self, x: np.ndarray) -> np.ndarray:
        return self.a * (x @ self.w + self.b0) + self.b

    def in_scope(self, logits: np.ndarray) -> np.ndarray:
        """The calibrated in_scope of ImageNet logits (N, 1000), as the exported file computes it."""
        return 1.0 / (1.0 + np.exp(-self.logit(evidence(logits))))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def evidence(logits: np.ndarray) -> np.ndarray:
    """(N, len(EVIDENCE)): the log of the ImageNet softmax mass on each evidence input (floored)."""
    return np.log(np.maximum(np.exp(log_softmax(logits)) @ evidence_matrix(), EVIDENCE_FLOOR))


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    return float(roc_auc_score(y, np.r_[positive, negative]))


def fit_head(fit: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Head:
    """A class-balanced logistic regression on evidence(logits) of `fit` (logits, in_scope), its C the
    one with the largest sum of two validation AUROCs (in-scope vs near, in-scope vs far: `val` is
    logits, in_scope and near, near marking the out-of-scope photos that are garments), then Platt scaling
    of its score on `val`, class-balanced, i.e. a 50/50 prior, about a real catalog's mix."""
    from sklearn.linear_model import LogisticRegression

    x_fit, y_fit = evidence(fit[0]), fit[1]
    x_val, y_val, near = evidence(val[0]), val[1], val[2]
    far = ~y_val & ~near
    tried = []
    for c in C_CHOICES:
        z = (
            LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
            .fit(x_fit, y_fit)
            .decision_function(x_val)
        )
        tried.append({"C": c, "auroc_near": round(auroc(z[y_val], z[near]), 4),
                      "auroc_far": round(auroc(z[y_val], z[far]), 4)})  # fmt: skip
        print(f"C={c:g}: validation AUROC near {tried[-1]['auroc_near']} far {tried[-1]['auroc_far']}")
    c = max(tried, key=lambda t: t["auroc_near"] + t["auroc_far"])["C"]
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x_fit, y_fit)
    z_val = lr.decision_function(x_val)
    platt = LogisticRegression(C=1e6, class_weight="balanced", max_iter=1000).fit(z_val[:, None], y_val)
    return Head(
        w=lr.coef_[0].astype(np.float32),
        b0=float(lr.intercept_[0]),
        a=float(platt.coef_[0, 0]),
        b=float(platt.intercept_[0]),
        c=c,
        tried=tried,
    )


def operating_point(in_scope: np.ndarray, keep: float = KEEP) -> float:
    """The in_scope below which a photo is answered other: the (1 - keep) quantile of in-scope photos'
    in_scope, so `keep` of them stay in scope."""
    return float(np.quantile(in_scope, 1 - keep))
