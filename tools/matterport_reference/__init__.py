"""Matterport's Keras reference: the scripts behind the Matterport fixtures, the .h5 writer."""
