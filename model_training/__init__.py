"""Transfer learning for flower photos: data, frozen MobileNetV2 features, the trained head."""
