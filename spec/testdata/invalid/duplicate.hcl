# want: Duplicate resource "thing.a" at 5: already declared
thing "a" {
  name = "a"
}
thing "a" {
  name = "b"
}
