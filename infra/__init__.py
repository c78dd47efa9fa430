"""Infrastructure: the CDK stack, Docker-free bundling, and the local stand-in for the cloud."""
