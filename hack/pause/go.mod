module github.com/secure-redis-operator/hack/pause

go 1.24
