"""The file-system logic behind the mount, in plain Python: never imports mfusepy."""
