"""Data structures below the network: boxes, images (read, resize plan, mold and unmold,
Matterport's
molding), masks and device transfer. Nothing here knows the network."""
