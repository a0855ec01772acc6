output "minio_id" {
  description = "ID (name) of the bucket."
  value       = minio_s3_bucket.bucket.id
}

output "minio_url" {
  description = "URL of the bucket on the MinIO server."
  value       = minio_s3_bucket.bucket.bucket_domain_name
}
