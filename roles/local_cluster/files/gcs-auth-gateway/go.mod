module example.invalid/gcs-auth-gateway

go 1.26
