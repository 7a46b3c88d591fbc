# want: Attribute cannot be set at 4: computed by the provider
thing "a" {
  name = "a"
  id   = "mine"
}
