variable "bucket_name" {
  description = "Name of the bucket to create, e.g. \"my-app.default\" (<request name>.<namespace>)."
  type        = string

  validation {
    condition     = length(var.bucket_name) >= 3 && length(var.bucket_name) <= 63
    error_message = "A bucket name must be 3 to 63 characters long."
  }
}

variable "minio_region" {
  description = "Region the MinIO server reports."
  type        = string
  default     = "us-east-1"
}
