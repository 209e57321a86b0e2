"""The payload suite: what every payload image adds to the base."""
