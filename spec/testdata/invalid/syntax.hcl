# want: Missing newline after argument at 3: An argument definition must end with a newline
thing "a" {
  name = "a" "b"
}
