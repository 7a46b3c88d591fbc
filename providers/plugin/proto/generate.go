// Package providerpb holds the Go code generated from provider.proto, the
// wire format of berth's provider protocol. Do not edit the generated files;
// change provider.proto and regenerate them with `go generate` in this
// directory (it needs protoc, protoc-gen-go and protoc-gen-go-grpc on PATH).
package providerpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative provider.proto
