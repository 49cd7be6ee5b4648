#uicontrol invlerp normalized(range=[20, 230])
void main() {
  emitGrayscale(normalized());
}
