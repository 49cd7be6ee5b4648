#uicontrol invlerp normalized(range=[230, 20])
void main() {
  emitGrayscale(normalized());
}
