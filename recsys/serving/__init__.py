"""SERVING layer: embeddings, recommendations and popularity built per day (`build`) and stored (`store`)."""
