"""``python -m vae_teach.weights``: train the shipped weights again and write them beside the module."""

from vae_teach.weights import write_faces_2d

if __name__ == "__main__":
    print(f"wrote {write_faces_2d()}")
