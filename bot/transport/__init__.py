"""Transport: provider webhooks in, provider sends out."""
