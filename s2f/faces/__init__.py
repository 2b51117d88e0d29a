"""Face detection, cropping and face-feature backends (dlib weights from `face_recognition_models`)."""
