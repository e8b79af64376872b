public enum _PKronosRuntime {}
