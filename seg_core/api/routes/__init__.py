"""The API's routes, one router per concern: health, models, segment, samples."""
