"""Getting bytes into a portal: deduplicated uploads through upload links."""
