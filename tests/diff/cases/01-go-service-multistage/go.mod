module example.com/platform/api

go 1.22

require github.com/example/lib v1.4.0
