# A MinIO bucket for one App request, named "<name>.<namespace>".
#
# The provider reads its connection settings from the environment, which the
# pipeline step fills from the app-promise-minio-creds Secret:
#   MINIO_ENDPOINT      host:port of the MinIO S3 API (minio_server)
#   MINIO_USER          access key / user name      (minio_user)
#   MINIO_PASSWORD      secret key / password       (minio_password)
#   MINIO_ENABLE_HTTPS  "true" to talk TLS          (minio_ssl, default false)
# Nothing secret is written in this module or passed as a variable.

terraform {
  required_version = ">= 1.3"

  required_providers {
    minio = {
      source  = "aminueza/minio"
      version = "2.0.1"
    }
  }
}

provider "minio" {
  minio_region = var.minio_region
}

resource "minio_s3_bucket" "bucket" {
  bucket = var.bucket_name
  acl    = "private"
}
