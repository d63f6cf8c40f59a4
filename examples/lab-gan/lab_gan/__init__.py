"""A small research package: its own GAN (lab_gan.models) and data (lab_gan.data)."""
