"""The build of models/scope/, the scope judge, in parts (scripts/build_scope_model.py runs them in order).

- imagenet_groups: the ImageNet classes whose names look like the 10 classes, like garments near them,
  or like the small products of a shop outside them;
- backbone: EfficientNet-Lite0 rebuilt in Keras with its ImageNet classifier kept;
- licensed_data: the licensed photos the head is fitted and its operating point set on, each made into
  the picture the product's judge reads;
- head: the evidence head, its Platt calibration and the operating-point rule;
- export: the whole judge as one LiteRT file and its model-card entry.
"""
