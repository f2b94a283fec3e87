module gcsfront.local/gcsfront-catalog

go 1.22
