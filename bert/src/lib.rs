//! BERT model: configuration, weights, plaintext references (built in the bert issue).
