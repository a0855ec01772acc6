# A module with no provider and no resource: variables, locals and outputs only. Terraform 1.0.3
# runs it offline and keeps a real state (version 4, lineage, serial, outputs), so the runner's
# state restore, idempotency ("No changes."), plan and destroy are tested against Terraform
# itself (tests/test_real_terraform.py).

terraform {
  required_version = ">= 1.0"
}

variable "name" {
  type = string
}

variable "tier" {
  type    = string
  default = "small"

  validation {
    condition     = contains(["small", "large"], var.tier)
    error_message = "The tier must be small or large."
  }
}

locals {
  replicas = { small = 1, large = 3 }[var.tier]
}

output "name" {
  value = var.name
}

output "tier" {
  value = var.tier
}

output "address" {
  value = "${var.name}.${var.tier}.example"
}

output "replicas" {
  value = local.replicas
}
