module gcsfront.local/gcs-latency-proxy

go 1.22
