"""Explanations of reconstruction-based anomaly scores: segmentation, LIME, SHAP."""
