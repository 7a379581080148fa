"""Side-by-side training benchmarks of the vae_teach backends (not tests): see bench/README.md."""
