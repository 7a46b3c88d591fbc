# want: Unsupported argument at 4: Did you mean "value"?
thing "a" {
  name = "a"
  valeu = "x"
}
