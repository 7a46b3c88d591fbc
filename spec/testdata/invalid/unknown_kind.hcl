# want: Unknown resource kind at 2: Did you mean "thing"?
thnig "a" {
  name = "a"
}
