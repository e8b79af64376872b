public enum _PKronosCheckpoint {}
