"""Real-time multimodal emotion recognition: voice (MFCC→BiLSTM) and face, smoothed and fused."""
