# want: Dependency cycle at 3: local.x
locals {
  x = thing.a.id
}
thing "a" {
  name = local.x
}
