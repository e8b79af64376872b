public enum _PKronosConvert {}
